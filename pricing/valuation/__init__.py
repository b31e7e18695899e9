"""Data valuation, pure (numpy, no Django): Shapley and Banzhaf values of cooperative games, the
union-coverage game of co-providers, splits robust to replication, and KNN-Shapley for pooled rows."""
