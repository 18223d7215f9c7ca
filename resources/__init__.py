"""Assets the app ships (icons, colours, class names), installed as the package ``mbexplorer.resources``."""
