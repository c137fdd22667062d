"""Model backends behind one interface (``base.ModelProvider``)."""
