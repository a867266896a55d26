"""Table generators and the tabular encoding."""
