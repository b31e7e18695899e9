// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {DataRegistry} from "./DataRegistry.sol";

/// @title AccessRegistry: use grants on registered assets. The asset's owner grants a buyer a quota
/// of units for a purpose until an expiry; the owner's node consumes units before every job, so a
/// revoked, expired or exhausted grant stops use and the chain holds the usage count.
contract AccessRegistry {
    struct Grant {
        address issuer;
        address grantee;
        bytes32 assetId;
        bytes32 purposeHash;
        uint64 quota;
        uint64 used;
        uint64 expiresAt;
        bool revoked;
    }

    DataRegistry public immutable dataRegistry;

    mapping(bytes32 => Grant) private _grants;
    // grant id → job id → charged. Keyed by the pair, not the job alone: with job ids alone, the issuer
    // of any other grant could charge a victim's job id first and make the victim's own consume look
    // like "already charged" while its grant was never used. A retry of the same pair still reverts.
    mapping(bytes32 => mapping(bytes32 => bool)) private _charged;

    event Granted(
        bytes32 indexed grantId,
        bytes32 indexed assetId,
        address indexed grantee,
        address issuer,
        bytes32 purposeHash,
        uint64 quota,
        uint64 expiresAt
    );
    event Revoked(bytes32 indexed grantId, address indexed issuer);
    event Consumed(bytes32 indexed grantId, bytes32 indexed jobId, uint64 units, uint64 used);

    error NotAssetOwner(bytes32 assetId, address caller);
    error GrantExists(bytes32 grantId);
    error InvalidGrant();
    error UnknownGrant(bytes32 grantId);
    error NotGrantIssuer(bytes32 grantId, address caller);
    error GrantAlreadyRevoked(bytes32 grantId);
    error GrantRevoked(bytes32 grantId);
    error GrantExpired(bytes32 grantId, uint64 expiresAt);
    error QuotaExceeded(bytes32 grantId, uint64 requested, uint64 remaining);
    error JobAlreadyCharged(bytes32 grantId, bytes32 jobId);

    constructor(address dataRegistry_) {
        dataRegistry = DataRegistry(dataRegistry_);
    }

    /// @notice Grant `grantee` `quota` units of use of `assetId` for `purposeHash` until `expiresAt`.
    function grant(
        bytes32 grantId,
        bytes32 assetId,
        address grantee,
        bytes32 purposeHash,
        uint64 quota,
        uint64 expiresAt
    ) external {
        if (dataRegistry.ownerOf(assetId) != msg.sender) revert NotAssetOwner(assetId, msg.sender);
        if (_grants[grantId].issuer != address(0)) revert GrantExists(grantId);
        if (quota == 0 || grantee == address(0) || expiresAt <= block.timestamp) revert InvalidGrant();
        _grants[grantId] = Grant({
            issuer: msg.sender,
            grantee: grantee,
            assetId: assetId,
            purposeHash: purposeHash,
            quota: quota,
            used: 0,
            expiresAt: expiresAt,
            revoked: false
        });
        emit Granted(grantId, assetId, grantee, msg.sender, purposeHash, quota, expiresAt);
    }

    /// @notice Revoke a grant for good; only its issuer may.
    function revoke(bytes32 grantId) external {
        Grant storage g = _existing(grantId);
        if (g.issuer != msg.sender) revert NotGrantIssuer(grantId, msg.sender);
        if (g.revoked) revert GrantAlreadyRevoked(grantId);
        g.revoked = true;
        emit Revoked(grantId, msg.sender);
    }

    /// @notice Charge `units` of the grant to `jobId` before the job runs; only the issuer's node may.
    /// Each (grant, job) pair is charged at most once: a retry reverts JobAlreadyCharged(grantId, jobId).
    function consume(bytes32 grantId, bytes32 jobId, uint64 units) external {
        Grant storage g = _existing(grantId);
        if (g.issuer != msg.sender) revert NotGrantIssuer(grantId, msg.sender);
        if (g.revoked) revert GrantRevoked(grantId);
        if (block.timestamp >= g.expiresAt) revert GrantExpired(grantId, g.expiresAt);
        if (_charged[grantId][jobId]) revert JobAlreadyCharged(grantId, jobId);
        uint64 left = g.quota - g.used;
        if (units == 0 || units > left) revert QuotaExceeded(grantId, units, left);
        g.used += units;
        _charged[grantId][jobId] = true;
        emit Consumed(grantId, jobId, units, g.used);
    }

    /// @notice The whole grant; `issuer` is the zero address when it does not exist.
    function grantOf(bytes32 grantId) external view returns (Grant memory) {
        return _grants[grantId];
    }

    /// @notice Units still available: zero once revoked or expired.
    function remaining(bytes32 grantId) external view returns (uint64) {
        Grant storage g = _grants[grantId];
        if (g.revoked || block.timestamp >= g.expiresAt) return 0;
        return g.quota - g.used;
    }

    /// @notice Whether `jobId` was already charged to `grantId` (charges to other grants do not count).
    function isCharged(bytes32 grantId, bytes32 jobId) external view returns (bool) {
        return _charged[grantId][jobId];
    }

    function _existing(bytes32 grantId) private view returns (Grant storage g) {
        g = _grants[grantId];
        if (g.issuer == address(0)) revert UnknownGrant(grantId);
    }
}
