"""The face-recognition zoo: pretrained models behind one interface.

>>> from facelab import models
>>> models.available()
['faceres', 'faceres-deep', 'mobileface', 'mobilefacenet', 'faceapi-resnet', 'facenet-casia']
>>> m = models.load("mobileface")          # x01: float RGB [0,1], (N,3,112,112)
>>> m(x01).shape                           # (N, 256)
"""
from .online import NeedsInternetError
from .zoo import FaceModel, available, check_images, load

__all__ = ["FaceModel", "available", "check_images", "load", "NeedsInternetError"]
