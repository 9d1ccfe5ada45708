terraform {
  required_version = ">= 1.0"
  required_providers {
    # Modules must name the source themselves; without it Terraform would look for
    # hashicorp/akspolicy.
    akspolicy = {
      source  = "akspolicy/akspolicy"
      version = "~> 0.1"
    }
  }
}
