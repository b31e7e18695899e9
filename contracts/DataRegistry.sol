// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title DataRegistry: data rights confirmation. The first account to register an asset id owns it,
/// with the fingerprint (Merkle root of the dataset's row digests) it registered.
contract DataRegistry {
    struct Asset {
        address owner;
        bytes32 fingerprint;
    }

    mapping(bytes32 => Asset) private _assets;

    event AssetRegistered(bytes32 indexed assetId, address indexed owner, bytes32 fingerprint);

    error AssetAlreadyRegistered(bytes32 assetId);
    error ZeroFingerprint();

    /// @notice Register `assetId` with `fingerprint`; the caller becomes its owner. Write-once.
    function register(bytes32 assetId, bytes32 fingerprint) external {
        if (fingerprint == bytes32(0)) revert ZeroFingerprint();
        if (_assets[assetId].owner != address(0)) revert AssetAlreadyRegistered(assetId);
        _assets[assetId] = Asset({owner: msg.sender, fingerprint: fingerprint});
        emit AssetRegistered(assetId, msg.sender, fingerprint);
    }

    /// @notice The owner of `assetId`, or the zero address when it is not registered.
    function ownerOf(bytes32 assetId) external view returns (address) {
        return _assets[assetId].owner;
    }

    /// @notice The registered fingerprint of `assetId`, or zero when it is not registered.
    function fingerprintOf(bytes32 assetId) external view returns (bytes32) {
        return _assets[assetId].fingerprint;
    }
}
