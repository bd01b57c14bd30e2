"""kfaas's one door to Kafka and Redis: the only code that imports ``aiokafka`` and ``redis``.

The gateway's durable async queues, its destination sender and the stream pollers all reach the
brokers through this package (ADR 019), so there is one client set-up policy per use
(``policies``), one exception vocabulary with one decision of what is worth retrying
(``errors``), one rebalance adapter and consumer wrapper (``kafka_clients``), one Redis streams
wrapper with one consumer-group creation (``redis_streams``) and one destination sender with one
fallback to the platform's own Redis and Kafka (``destinations``). It sits below the components
and imports none of them.
"""
