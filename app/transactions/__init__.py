"""The transaction feed: cleared transactions from the bank's ledger, stored once, pushed to
QuickBooks Online through Codat under QuickBooks' rules, exactly once, and tracked."""
