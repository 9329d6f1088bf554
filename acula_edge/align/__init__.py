"""AcuLa alignment: post-train an audio encoder so that its embeddings agree with a frozen text teacher.

The training loss is ``lambda_align * L_align + lambda_msm * L_msm``: a representation-level
alignment between projected audio and text embeddings (standard linear CKA by default, the
authors' feature-Gram CKA variant, or symmetric InfoNCE with a learned temperature) plus masked
spectrogram modelling. The alignment losses live in :mod:`acula_edge.align.losses`, the trainer
in :mod:`acula_edge.align.trainer`, the command line in :mod:`acula_edge.align.cli`. Training
needs torch (``pip install 'acula-edge[train]'``); importing the package does not.
"""

