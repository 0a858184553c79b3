"""segment connector."""
