"""Figures of the study, one module per family. Each function takes arrays (and summaries) and
returns a ``matplotlib.figure.Figure``; pyplot is never used. The only layer that imports matplotlib."""
import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image, PngImagePlugin


def save_png(fig, file, dpi=110):
    """Write fig as a PNG of dpi pixels per inch into file, a binary file object (atomic_write's).

    The pixels are those of fig.savefig(file, dpi=dpi), drawn once where savefig draws
    twice (the first time only to run the layout engine, which one draw runs as well).
    Written as gray levels when no pixel has a colour, else as RGB when all are opaque
    (savefig writes RGBA always), at zlib's fastest level: the encoding takes half the
    time, and the files are smaller. fig is left as it was.
    """
    canvas_was, dpi_was = fig.canvas, fig.dpi
    canvas = FigureCanvasAgg(fig)
    try:
        fig.set_dpi(dpi)
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())  # (H, W, 4) uint8
    finally:
        fig.set_dpi(dpi_was)
        fig.set_canvas(canvas_was)
    red, green, blue, alpha = np.moveaxis(rgba, -1, 0)
    if (alpha == 255).all():
        rgba = red if ((green == red) & (blue == red)).all() else rgba[..., :3]
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", f"Matplotlib version{matplotlib.__version__}, https://matplotlib.org/")
    Image.fromarray(np.ascontiguousarray(rgba)).save(file, format="png", dpi=(dpi, dpi), pnginfo=info,
                                                     compress_level=1)
