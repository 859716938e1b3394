"""Everything that speaks Codat's wire format. The only package that imports httpx for Codat."""
