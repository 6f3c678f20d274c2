from enum import IntEnum


class Error1Or5Errorcode(IntEnum):
    VALUE_1 = 1
    VALUE_5 = 5

    def __str__(self) -> str:
        return str(self.value)
