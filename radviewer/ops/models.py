from django.db import models


class WorkerHeartbeat(models.Model):
    """Last time a worker consumed the heartbeat task from a queue (beat sends one per queue).

    /readyz reports its age per queue, so an operator sees a queue nobody consumes.
    """

    queue = models.CharField(max_length=40, unique=True)
    hostname = models.CharField(max_length=255)
    seen_at = models.DateTimeField()
    beats = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.queue}@{self.hostname} {self.seen_at:%H:%M:%S}"
