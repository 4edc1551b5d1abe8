"""Ports: the interfaces through which the use cases reach a hypervisor."""
