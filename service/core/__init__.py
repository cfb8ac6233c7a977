"""What every fitfleet process shares: settings read once from the environment, the error
hierarchy, logging, the Celery configuration and the client that enqueues jobs by task
name, and the one module that wraps private Keras calls."""
