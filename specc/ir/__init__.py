"""The typed IR: values with dtype and shape, ops with attributes and spans."""
