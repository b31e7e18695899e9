// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

interface IAccessRegistry {
    function isCharged(bytes32 grantId, bytes32 jobId) external view returns (bool);
}

/// @title UsageReceipts: one receipt per executed compute job, so that each use of a dataset can be
/// listed and checked from the chain alone. A receipt names the job, the grants it consumed (only grants
/// the AccessRegistry shows charged for that job are recorded) with their units, the digests of the
/// protocol, of its parameters and of what was released, and the privacy loss spent (micro-epsilon).
/// Write-once per job.
contract UsageReceipts is AccessControl {
    bytes32 public constant RECORDER_ROLE = keccak256("RECORDER_ROLE");

    IAccessRegistry public immutable accessRegistry;

    mapping(bytes32 => bytes32) private _receipts;  // jobId → receipt digest

    /// One per (job, grant) consumed: a provider lists the uses of its data by its grants.
    event UsageRecorded(bytes32 indexed jobId, bytes32 indexed grantId, uint64 units, bytes32 receipt);
    event ReceiptRecorded(
        bytes32 indexed jobId,
        bytes32 protocolDigest,
        bytes32 paramsDigest,
        bytes32 releaseDigest,
        uint64 epsilonMicros,
        bytes32 receipt
    );

    error ReceiptAlreadyRecorded(bytes32 jobId);
    error NothingCharged(bytes32 jobId);
    error LengthMismatch();

    constructor(address accessRegistry_) {
        accessRegistry = IAccessRegistry(accessRegistry_);
        _grantRole(DEFAULT_ADMIN_ROLE, msg.sender);
        _grantRole(RECORDER_ROLE, msg.sender);
    }

    /// @notice Record the receipt of job `jobId`. The receipt digest is keccak256 of the ABI encoding of
    /// every argument; grants not charged for the job on the AccessRegistry are left out of the events.
    function record(
        bytes32 jobId,
        bytes32[] calldata grantIds,
        uint64[] calldata units,
        bytes32 protocolDigest,
        bytes32 paramsDigest,
        bytes32 releaseDigest,
        uint64 epsilonMicros
    ) external onlyRole(RECORDER_ROLE) {
        if (_receipts[jobId] != bytes32(0)) revert ReceiptAlreadyRecorded(jobId);
        if (grantIds.length != units.length) revert LengthMismatch();
        bytes32 receipt = keccak256(
            abi.encode(jobId, grantIds, units, protocolDigest, paramsDigest, releaseDigest, epsilonMicros)
        );
        uint256 charged = 0;
        for (uint256 i = 0; i < grantIds.length; i++) {
            if (accessRegistry.isCharged(grantIds[i], jobId)) {
                charged++;
                emit UsageRecorded(jobId, grantIds[i], units[i], receipt);
            }
        }
        if (charged == 0) revert NothingCharged(jobId);
        _receipts[jobId] = receipt;
        emit ReceiptRecorded(jobId, protocolDigest, paramsDigest, releaseDigest, epsilonMicros, receipt);
    }

    /// @notice The receipt digest recorded for `jobId`; zero when none was.
    function receiptOf(bytes32 jobId) external view returns (bytes32) {
        return _receipts[jobId];
    }
}
