"""Pool views: what the harness computes over the whole pool for the strategies that declare it.

A strategy lists the views it reads (`Strategy.needs`: "embeddings", "gradients"); each view is one module of this
package, named as it registers, calling `register(PoolView(compute, name=...))` (harness/pool_views/base.py). The
runner (harness/stages/views.py) and the preflight read the declaration and never branch on a strategy's or a
view's name; discovery imports this package's view modules only.
"""
