"""Everything that speaks Codat's wire format. The only package that imports httpx for Codat."""

from app.codat.client import CodatClient, retry_budget
from app.codat.errors import CodatError

__all__ = ["CodatClient", "CodatError", "retry_budget"]
