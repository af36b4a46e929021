// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title CareLedger head anchors
/// @notice One contract per CareLedger cloud. The cloud's anchoring account publishes the hash
/// and records root of a block of its redactable chain; nobody, the cloud operator included,
/// can change or remove an anchor afterwards, and heights only go up. Because the chain commits
/// records by chameleon hash, approved redactions never change an anchored block hash.
/// @dev Compiled offline with solc-js (cloud/anchor/compile.ts); the ABI and bytecode are committed
/// in CareLedgerAnchor.json and a test checks that they match this source.
contract CareLedgerAnchor {
    /// @notice The only account that may anchor: the cloud's anchoring key.
    address public immutable anchorer;

    /// @notice Height of the newest anchored block; meaningful once `anchored` is true.
    uint64 public latestHeight;
    /// @notice False until the first anchor (height 0 is a real block).
    bool public anchored;

    /// @notice One per anchor: the block at `height` hashes to `blockHash` (SHA-256 of its canonical
    /// header) and commits to `recordsRoot` (RFC 9162 Merkle root over the records' chameleon hashes).
    event Anchored(uint64 indexed height, bytes32 blockHash, bytes32 recordsRoot);

    /// @notice The caller is not this cloud's anchoring account.
    error NotAnchorer(address caller);
    /// @notice Anchors only move forward: `height` must exceed `latest`.
    error HeightNotIncreasing(uint64 height, uint64 latest);
    /// @notice The anchoring account must be a real address.
    error ZeroAnchorer();

    constructor(address anchorer_) {
        if (anchorer_ == address(0)) revert ZeroAnchorer();
        anchorer = anchorer_;
    }

    /// @notice Anchor block `height` of the cloud's chain.
    function anchor(uint64 height, bytes32 blockHash, bytes32 recordsRoot) external {
        if (msg.sender != anchorer) revert NotAnchorer(msg.sender);
        if (anchored && height <= latestHeight) revert HeightNotIncreasing(height, latestHeight);
        latestHeight = height;
        anchored = true;
        emit Anchored(height, blockHash, recordsRoot);
    }
}
