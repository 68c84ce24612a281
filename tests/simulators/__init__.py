"""Provider simulators: TEST EQUIPMENT, not providers.

Each module serves one provider's protocol (../shared/providers/PROTOCOLS.md) over real HTTP on
loopback, records what it was sent (so tests can check the user tag and count submissions), and
has switches for faults: latency, 5xx, 429, timeouts, malformed JSON and expired URLs.
"""
