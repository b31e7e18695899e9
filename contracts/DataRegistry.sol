// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title DataRegistry: data rights confirmation. An asset id is bound to its owner:
/// assetId = keccak256(abi.encode(owner, localId)), so the account that registers a local id owns the
/// resulting asset, with the fingerprint (Merkle root of the dataset's row digests) it registered.
/// Nobody else can take that asset id first: registering the same local id from another account
/// yields another asset id.
contract DataRegistry {
    struct Asset {
        address owner;
        bytes32 fingerprint;
    }

    mapping(bytes32 => Asset) private _assets;

    event AssetRegistered(bytes32 indexed assetId, address indexed owner, bytes32 localId, bytes32 fingerprint);

    error AssetAlreadyRegistered(bytes32 assetId);
    error ZeroFingerprint();

    /// @notice Register the caller's `localId` with `fingerprint`; the caller owns the returned asset id.
    /// Write-once per (caller, localId).
    function register(bytes32 localId, bytes32 fingerprint) external returns (bytes32 assetId) {
        if (fingerprint == bytes32(0)) revert ZeroFingerprint();
        assetId = _assetIdOf(msg.sender, localId);
        if (_assets[assetId].owner != address(0)) revert AssetAlreadyRegistered(assetId);
        _assets[assetId] = Asset({owner: msg.sender, fingerprint: fingerprint});
        emit AssetRegistered(assetId, msg.sender, localId, fingerprint);
    }

    /// @notice The asset id that `owner` gets by registering `localId`.
    function assetIdOf(address owner, bytes32 localId) external pure returns (bytes32) {
        return _assetIdOf(owner, localId);
    }

    /// @notice The owner of `assetId`, or the zero address when it is not registered.
    function ownerOf(bytes32 assetId) external view returns (address) {
        return _assets[assetId].owner;
    }

    /// @notice The registered fingerprint of `assetId`, or zero when it is not registered.
    function fingerprintOf(bytes32 assetId) external view returns (bytes32) {
        return _assets[assetId].fingerprint;
    }

    function _assetIdOf(address owner, bytes32 localId) private pure returns (bytes32) {
        return keccak256(abi.encode(owner, localId));
    }
}
