module ec1

go 1.19
