"""Dress rehearsal of a shipped study config on any machine: generated stand-ins for what a real run needs.

The real study needs pretrained weights from the Hugging Face hub and datasets on disk. This package writes
both locally, in the exact places and formats the real loaders read: random-init weights of the real
architectures under the hub cache's repo ids and file names (``weights``), and datasets in their published
on-disk layouts (``datasets``). A study config then runs unchanged through the real pretrained-loading path; only
its size is overlaid (a few images per class, a few steps).
"""

import hashlib

# The fake hub commit the generated weights live under (40 hex digits: huggingface_hub treats only such a revision
# as a commit). The report flags every model whose weights file sits in a snapshot of this commit, so rehearsal
# weights left in a cache can never pass for the real ones.
REHEARSAL_COMMIT = hashlib.sha1(b"embedrobust rehearsal weights").hexdigest()


def is_rehearsal_weights(path: str | None) -> bool:
    """Whether a weights file is one of the generated stand-ins (a snapshot of ``REHEARSAL_COMMIT``)."""
    return bool(path) and f"/snapshots/{REHEARSAL_COMMIT}/" in str(path).replace("\\", "/")
