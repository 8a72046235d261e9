"""Human tasks (continuations) and the inbox: the inbox's reads, the continuation writes of a
transaction, the list row a task is shown as, and the words a task is searched by.

No re-exports: import from the module.
"""
