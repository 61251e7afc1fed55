"""Data: record readers, token shards, language-model batches."""
