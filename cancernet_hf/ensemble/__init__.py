"""The ensemble's remote code (copied beside the weights; it never imports cancernet_hf).

Import the classes from the submodules (`cancernet_hf.ensemble.modeling_cancernet`, ...); this
package file stays empty so that importing it costs nothing.
"""
