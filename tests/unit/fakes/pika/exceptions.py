class AMQPError(Exception):
    pass


class AMQPConnectionError(AMQPError):
    pass
