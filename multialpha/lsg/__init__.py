"""A lean client for Databento's Live Subscription Gateway (LSG), for the hub.

``control`` (the text lines), ``handshake`` (connect + CRAM authentication) and ``client``
(``Live``: subscribe, start, the DBN reader thread). Only ``databento_dbn`` and the standard
library: no pandas, pyarrow or asyncio stack. docs/hub.md, "The Live connection".
"""

from multialpha.lsg.client import Live, LiveError, default_gateway

__all__ = ["Live", "LiveError", "default_gateway"]
