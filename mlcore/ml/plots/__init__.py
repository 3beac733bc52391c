"""Server-side plots for the console, as SVG text (readable without JavaScript, cached on
the rows that own them). One module per page group; ``_svg`` holds the shared figure setup.
"""
