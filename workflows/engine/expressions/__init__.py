"""The one expression language: Jinja2 in an immutable sandbox with strict undefined names.

Templates (`Hello {{ input.name }}`) render to strings; expressions (`nodes.check.output.status == 200`)
evaluate to a value and are used where a value, not text, is wanted (conditions, loop items). Where a
JSON value is built from templates (a transform's values, a child run's input, a JSON body), a string
that is exactly one `{{ expression }}` gives the expression's value, so `"{{ input.a + input.b }}"` is
the number 3 and `"{{ input.tags }}"` a list; a string with text around its expression is text. Both are
parsed when a definition is saved (`checking`), so a syntax error is a 400 naming the node and the field
rather than a failed run.

At run time a template comes from a workflow author, so rendering (`rendering`) is bounded: the sandbox
(`environment`) refuses Python internals, every operation that can build a large value checks its size
*before* building it (`sizes`, `operators`, `filters`), and loops, calls and filters check a CPU-time
deadline (`limits`). Any failure is an `ExpressionError` (`errors`) saying what went wrong and, when
known, on which template line.
"""
