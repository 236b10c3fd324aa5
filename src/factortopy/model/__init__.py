"""The FactorTopy model: positional encoding, selection kernel, the nn.Module."""
