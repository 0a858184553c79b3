"""Pure functions over data: messages, identity, field mapping and fallbacks.

`mapping` knows no runs, no state and no ESP.
"""
