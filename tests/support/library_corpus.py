"""The library corpus: a notebook of the libraries people use on a Jupyter kernel.

Each cell is named (its id) after what it exercises.  Run with nbclient and
``store_widget_state=True`` on ipykernel and on ipytwist, the two notebooks must
give the same outputs and the same stored widget state (tests/test_library_corpus.py,
compared by :mod:`benchlib.nbcompare`).
"""

from __future__ import annotations

#: (cell name, source), in execution order.
CELLS: list[tuple[str, str]] = [
    ("detect-shell-class", "type(get_ipython()).__name__"),
    ("detect-ipkernelapp", "'IPKernelApp' in get_ipython().config"),
    ("detect-kernel", "hasattr(get_ipython(), 'kernel')"),
    (
        "widgets-slider",
        "import ipywidgets as widgets\n"
        "slider = widgets.IntSlider(5, min=0, max=10, description='n')\n"
        "slider",
    ),
    ("widgets-slider-set", "slider.value = 7\nslider.value"),
    (
        "widgets-interact",
        "from ipywidgets import interact\ndef double(x):\n    return x * 2\ninteract(double, x=3);",
    ),
    (
        "widgets-output",
        "out = widgets.Output()\n"
        "with out:\n"
        "    print('captured by the Output widget')\n"
        "display(out)\n"
        "print('printed to the cell')",
    ),
    (
        "widgets-boxes",
        "widgets.VBox([\n"
        "    widgets.HBox([widgets.Button(description='go'), widgets.Text('text')]),\n"
        "    widgets.Checkbox(True, description='on'),\n"
        "])",
    ),
    (
        "anywidget",
        "import anywidget, traitlets\n"
        "class Counter(anywidget.AnyWidget):\n"
        '    _esm = \'function render({ model, el }) { el.textContent = model.get("count"); }'
        "\\nexport default { render };'\n"
        "    count = traitlets.Int(3).tag(sync=True)\n"
        "Counter()",
    ),
    (
        "tqdm-auto",
        "from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='steps'):\n    pass",
    ),
    (
        "ipympl",
        "%matplotlib widget\n"
        "import matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(figsize=(3, 2))\n"
        "ax.plot([1, 2, 3], [1, 4, 9])\n"
        "plt.show()",
    ),
    (
        "plotly-figure",
        "import plotly.graph_objects as go\ngo.Figure(go.Bar(x=['a', 'b'], y=[3, 4])).show()",
    ),
    ("plotly-figurewidget", "go.FigureWidget(go.Scatter(y=[1, 3, 2]))"),
    (
        "bokeh",
        "from bokeh.io import output_notebook, show\n"
        "from bokeh.plotting import figure\n"
        "output_notebook(hide_banner=True)\n"
        "p = figure(width=200, height=200)\n"
        "p.line([1, 2, 3], [3, 1, 2])\n"
        "show(p)",
    ),
    (
        "altair",
        "import altair as alt\nimport pandas as pd\n"
        "df = pd.DataFrame({'a': ['x', 'y', 'z'], 'b': [3, 1, 2]})\n"
        "alt.Chart(df).mark_bar().encode(x='a', y='b')",
    ),
    ("pandas", "df"),
    (
        "sympy",
        "import sympy\n"
        "sympy.init_printing()\n"
        "x = sympy.symbols('x')\n"
        "sympy.Integral(sympy.sqrt(1 / x), x)",
    ),
    (
        "update-display",
        "from IPython.display import display, update_display\n"
        "display('first', display_id='corpus-shown')\n"
        "update_display('second', display_id='corpus-shown')",
    ),
    ("update-display-later", "update_display('third', display_id='corpus-shown')\n'done'"),
]
