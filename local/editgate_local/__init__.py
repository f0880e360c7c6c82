"""editgate's local stand-ins (never deployed): the fal emulator, the API Gateway front, the
embedded moto stack and the ``editgate`` command."""
