"""The one metrics module of ensō, one file per family of measures.

* :mod:`.image`: MSE and PSNR of images in [0, 1]
* :mod:`.structural`: MS-SSIM (and in dB)
* :mod:`.perceptual`: LPIPS with an offline AlexNet backbone
* :mod:`.rate_distortion`: BD-rate and BD-PSNR
* :mod:`.detection`: ROC-AUC of anomaly scores
* :mod:`.codebook`: perplexity, usage and dead latents
* :mod:`.disentanglement`: MIG
* :mod:`.distribution`: FID and KID (pytorch-fid's Inception, offline weights)
"""
