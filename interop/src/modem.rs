//! iaxmodem (libiax2 + spandsp) as a test peer.
