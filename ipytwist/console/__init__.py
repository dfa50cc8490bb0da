"""``ipytwist console``: an IPython terminal whose kernel lives on an ipytwist service.

It speaks the service's REST + WebSocket API (so the same token and TLS apply),
never ZeroMQ.  Rooms: :mod:`.server` (finding the service, tokens, REST),
:mod:`.channel` (the kernel WebSocket, reconnecting), :mod:`.render` (messages
as terminal text, pure), :mod:`.repl` (the prompt) and :mod:`.cli`.
"""
