from twisted.application.service import ServiceMaker

ipytwist = ServiceMaker(
    "ipytwist", "ipytwist.tap", "IPython kernels over ZeroMQ, REST and WebSocket", "ipytwist"
)
