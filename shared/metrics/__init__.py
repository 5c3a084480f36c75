"""The one metrics module of ensō, one file per family of measures.

* :mod:`.image`: PSNR (and later MS-SSIM, LPIPS) of images in [0, 1]
* :mod:`.detection`: ROC-AUC of anomaly scores
* other files: disentanglement (MIG), codebook usage, ...
"""
