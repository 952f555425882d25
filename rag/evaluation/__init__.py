"""Reference Q&A set, metrics, the batch evaluation harness and its report."""
