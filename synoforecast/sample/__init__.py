"""The sample workbook generator: realistic sale-out exports that follow the contract."""
