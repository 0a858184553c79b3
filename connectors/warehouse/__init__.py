"""warehouse connector."""
