// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title AuditAnchor: write-once Merkle roots of audit-log batches, so anyone can check an entry's
/// inclusion proof against the chain.
contract AuditAnchor is AccessControl {
    bytes32 public constant ANCHORER_ROLE = keccak256("ANCHORER_ROLE");

    struct Batch {
        bytes32 root;
        uint64 count;
        uint64 anchoredAt;
    }

    mapping(uint64 => Batch) private _batches;

    event Anchored(uint64 indexed batchId, bytes32 root, uint64 count);

    error BatchAlreadyAnchored(uint64 batchId);
    error EmptyBatch();

    constructor() {
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
        _grantRole(ANCHORER_ROLE, msg.sender);
    }

    /// @notice Anchor the Merkle `root` of batch `batchId` holding `count` entries. Write-once.
    function anchor(uint64 batchId, bytes32 root, uint64 count) external onlyRole(ANCHORER_ROLE) {
        if (count == 0 || root == bytes32(0)) revert EmptyBatch();
        if (_batches[batchId].root != bytes32(0)) revert BatchAlreadyAnchored(batchId);
        _batches[batchId] = Batch({root: root, count: count, anchoredAt: uint64(block.timestamp)});
        emit Anchored(batchId, root, count);
    }

    /// @notice The anchored batch; all zero when it was never anchored.
    function rootOf(uint64 batchId) external view returns (bytes32 root, uint64 count, uint64 anchoredAt) {
        Batch storage b = _batches[batchId];
        return (b.root, b.count, b.anchoredAt);
    }
}
