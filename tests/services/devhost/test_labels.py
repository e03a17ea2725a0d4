"""The local host's own ids: UUID text, distinct, and distinct across forked instances too."""

from __future__ import annotations

import os
import uuid

from services.devhost.labels import new_label


def test_labels_are_distinct_version_4_uuid_text() -> None:
    labels = [new_label() for _ in range(10_000)]
    assert len(set(labels)) == len(labels)
    for label in labels[:100]:
        parsed = uuid.UUID(label)
        assert str(parsed) == label and parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_instance_does_not_repeat_the_parent_s_labels() -> None:
    # Instances share one host database, where operation ids must not collide: the random generator is reseeded
    # in a forked child, so parent and child draw different ids from the same point.
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next labels and leave at once
        os.close(read)
        os.write(write, " ".join(new_label() for _ in range(5)).encode())
        os._exit(0)
    os.close(write)
    parent = {new_label() for _ in range(5)}
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    assert len(child) == 5 and not parent & child
