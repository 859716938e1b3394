"""The operations API: customers, source accounts, bank-feed status, bulk import."""
