"""The event bus: committed events and their decisions published to a stream (Redis Streams or NATS
JetStream) through a transactional outbox, and the asynchronous consumers that monitor them."""
