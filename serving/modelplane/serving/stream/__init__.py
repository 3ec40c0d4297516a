"""`modelplane stream`: score events from Kafka, Redis Streams or NATS JetStream, at least
once, with a dead-letter path for what cannot be scored."""
