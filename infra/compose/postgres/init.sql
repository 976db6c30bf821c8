-- One database per service, as on the native stack (each service migrates its own).
CREATE DATABASE orders;
CREATE DATABASE payments;
