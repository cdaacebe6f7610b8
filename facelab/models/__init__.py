"""The face-recognition zoo: pretrained models behind one interface.

>>> from facelab import models
>>> models.available()
['faceres', 'faceres-deep', 'mobileface', 'mobilefacenet', 'faceapi-resnet', 'facenet-casia']
>>> m = models.load("mobileface")  # doctest: +SKIP
>>> m(x01).shape  # x01: float RGB [0,1], (N,3,112,112) → (N, 256)  # doctest: +SKIP
>>> half = models.load("mobileface", "cuda", precision="float16")  # opt-in mixed precision  # doctest: +SKIP
"""
from .online import NeedsInternetError
from .zoo import PRECISIONS, FaceModel, available, check_images, load

__all__ = ["FaceModel", "PRECISIONS", "available", "check_images", "load", "NeedsInternetError"]
