"""Compile the Solidity contracts (placeholder until the sources land)."""
if __name__ == "__main__":
    pass
