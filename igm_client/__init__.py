"""Python client and `igm` command of the IGM Lab service (httpx only: no torch, no server code)."""

from igm_client.client import DEFAULT_URL, FILTERS, IGMClient, IGMClientError

__all__ = ["DEFAULT_URL", "FILTERS", "IGMClient", "IGMClientError"]
