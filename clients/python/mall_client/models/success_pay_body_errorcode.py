from enum import IntEnum


class SuccessPayBodyErrorcode(IntEnum):
    VALUE_0 = 0

    def __str__(self) -> str:
        return str(self.value)
