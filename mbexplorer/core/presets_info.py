"""The preprocessing presets' names, what each reproduces, and the knobs a custom one turns: plain constants,
without numpy or PIL.

The CLI's argument parser needs them at start-up (``--help`` must stay instant, as with ``families.py``),
so they live here and ``preprocess.py`` imports them.
"""

PRESETS = ("torchvision", "timm", "tfslim", "keras", "tfjs", "coral", "paddle", "custom")

# What each preset reproduces, for the window, --help and the details of every result.
REFERENCES = {
    "torchvision": "torchvision's PIL path: Resize, CenterCrop, ToTensor, Normalize",
    "timm": "timm's eval transforms: Resize(floor(size / crop_pct)), CenterCrop, ToTensor, Normalize",
    "tfslim": "TF-slim preprocess_for_eval: decode_jpeg, central_crop(0.875), resize_bilinear (v1)",
    "keras": "keras.utils.load_img(target_size) (nearest) + mobilenet.preprocess_input",
    "tfjs": "@tensorflow-models/mobilenet: x * 2/255 - 1, resizeBilinear(alignCorners)",
    "coral": "TFLite / Coral: tf.image.resize(bilinear, antialias=False), cast to uint8",
    "paddle": "PaddleClas: cv2.imdecode, ResizeImage(resize_short), CropImage, NormalizeImage",
    "custom": "custom: the options set, on top of a preset",
}

# Which preset "auto" picks for a model, by its source (``preprocess.source_preset`` decides; this is its text).
AUTO = ("TFLite: coral; Keras: keras; TF.js: tfjs; PyTorch: torchvision or timm by its naming; "
        "ONNX exported by PaddlePaddle: paddle; anything else: torchvision")

# The resize kernels a preset can use (``Preprocess.interpolation``).
INTERPOLATIONS = ("pil", "pil_bicubic", "pil_nearest", "tf", "tf_legacy", "tf_align_corners", "tfjs", "cv2")
INTERPOLATION_TITLES = {
    "pil": "PIL bilinear, antialiased (torchvision)",
    "pil_bicubic": "PIL bicubic, antialiased (timm)",
    "pil_nearest": "PIL nearest (Keras load_img)",
    "tf": "TF bilinear, half-pixel, no antialias (tf.image.resize, Coral)",
    "tf_legacy": "TF v1 bilinear, no antialias (TF-slim)",
    "tf_align_corners": "TF bilinear, align corners (tf.compat.v1 resize_bilinear)",
    "tfjs": "TF.js bilinear, align corners, in doubles (TF.js)",
    "cv2": "OpenCV INTER_LINEAR (PaddleClas)",
}

# The decoders (``decoding.DECODERS``) and what becomes of transparency.
DECODERS = ("pil", "tf", "cv2")
DECODER_TITLES = {
    "pil": "PIL: Image.open().convert('RGB')",
    "tf": "TensorFlow: tf.io.decode_image (fast integer DCT)",
    "cv2": "OpenCV: cv2.imdecode, EXIF-rotated",
}
ALPHAS = ("drop", "white")
ALPHA_TITLES = {"drop": "dropped (every reference loader)", "white": "composited over white"}
